//! Extractors whose rejections are [`ApiError`]s, so that a malformed body, a wrong type in
//! the query string or a bad path segment get the same problem+json answer as every other
//! error, listing every failing field ([`crate::validation`]). Handlers use these instead of
//! axum's own `Json`, `Query`, `Path` and `Form`.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::validation::{self, FieldError};

/// A JSON request or response body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned + utoipa::PartialSchema,
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
    T: DeserializeOwned + utoipa::PartialSchema + Default,
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

/// `bytes` as a `T`, which must come from a JSON object. Read directly first; only a body
/// that does not fit is read again, to list every failing field.
fn json_object<T: DeserializeOwned + utoipa::PartialSchema>(bytes: &[u8]) -> Result<T, ApiError> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let mut first = None;
    if object {
        match serde_json::from_slice::<T>(bytes) {
            Ok(value) => return Ok(value),
            Err(error) if error.is_data() => first = Some(error),
            Err(error) => return Err(malformed(&error)),
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    if !object {
        return Err(ApiError::invalid_body(
            "",
            "not-an-object",
            "The body must be a JSON object.",
        ));
    }
    match validation::json_object::<T>(value) {
        Err(errors) => Err(ApiError::InvalidBody(errors)),
        // The bytes were refused where their parsed value passes: a key given twice (a value
        // keeps the last one), which must stay refused, or a proxy that reads the first one
        // would disagree with us about the body.
        Ok(_) => Err(ApiError::InvalidBody(vec![FieldError::from_serde(
            String::new(),
            &first.map(|e| e.to_string()).unwrap_or_default(),
        )])),
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::MalformedBody(format!("The body is not valid JSON: {error}"))
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
            JsonRejection::JsonDataError(e) => {
                Self::invalid_body("", "invalid-value", &e.body_text())
            }
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

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        match serde_urlencoded::from_str::<T>(query) {
            Ok(value) => Ok(Self(value)),
            Err(_) => validation::urlencoded(query.as_bytes(), str::to_owned)
                .map(Self)
                .map_err(ApiError::InvalidQuery),
        }
    }
}

/// An `application/x-www-form-urlencoded` body (the OAuth 2.0 token endpoint's), whose
/// failing fields are located as a JSON body's are (`/username`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Form<T>(pub T);

impl<T, S> FromRequest<S> for Form<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(ApiError::UnsupportedMediaType(
                "Expected a body with `Content-Type: application/x-www-form-urlencoded`."
                    .to_owned(),
            ));
        }
        let bytes = body(req, state).await?;
        match serde_urlencoded::from_bytes::<T>(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(_) => validation::urlencoded(&bytes, validation::member_pointer)
                .map(Self)
                .map_err(ApiError::InvalidBody),
        }
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
            Err(rejection) => {
                let mut error = ApiError::from(rejection);
                // A route with one parameter is read as a bare value, so axum's error names no
                // segment: it is that one.
                if let ApiError::InvalidPath(errors) = &mut error
                    && let Ok(params) =
                        axum::extract::RawPathParams::from_request_parts(parts, state).await
                    && let [(name, _)] = params.iter().collect::<Vec<_>>().as_slice()
                {
                    for unnamed in errors.iter_mut().filter(|e| e.pointer.is_empty()) {
                        unnamed.pointer = (*name).to_owned();
                    }
                }
                Err(error)
            }
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => {
                // The segment's name where axum knows it ("" for the path as a whole).
                let name = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => String::new(),
                };
                Self::InvalidPath(vec![FieldError::new(name, "invalid-value", &e.body_text())])
            }
            // The route and the handler disagree: a bug, not the caller's fault.
            other => Self::internal(other.body_text()),
        }
    }
}

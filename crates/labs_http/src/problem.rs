//! The error type of our HTTP surfaces, rendered as RFC 9457 problem details.
//!
//! Every error response of the service has the same shape, whoever produced it: a handler
//! (returning [`ApiError`]), an extractor (our wrappers in [`crate::extract`]), or a layer that
//! knows nothing about us (405 from the router, 413 from the body limit, ...), whose bare
//! responses [`crate::layers`] rewrites through [`ApiError::from_status`].

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::request_id::current_request_id;
use crate::validation::{FieldError, summary};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// RFC 9457 problem details, as every error response carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "urn:labs:problem:not-found",
    "title": "Not Found",
    "status": 404,
    "detail": "No resource at this path.",
    "code": "not-found",
    "requestId": "0193a5b2-6a9e-7c3d-8f21-4b5e6d7c8a90"
}))]
pub struct Problem {
    /// A URI that names the kind of problem: `urn:labs:problem:<code>`. Stable: clients may
    /// branch on it (or on `code`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status's reason phrase.
    pub title: String,
    /// The HTTP status code, repeated for clients that only see the body.
    pub status: u16,
    /// What went wrong, for a human. Never holds internal details.
    pub detail: String,
    /// The stable, machine-readable kind of problem (the last segment of `type`).
    pub code: String,
    /// The request's id (also in the `x-request-id` header), to quote when asking for help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Every failing field, when the request's content caused the problem (`invalid-body`,
    /// `invalid-query`, `invalid-path`, `malformed-body`): all of them, not only the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members specific to one kind of problem (RFC 9457 §3.2), such as `mfaToken` on
    /// `mfa-required`; documented with the operations that return them.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(ignore)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// Everything that can go wrong in a request, one variant per kind of answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The JSON body is not valid JSON, or could not be read.
    #[error("{0}")]
    MalformedBody(String),
    /// The body is valid JSON (or a form) but not of the expected shape or values: every
    /// failing field, each located by a JSON Pointer.
    #[error("{}", summary(.0))]
    InvalidBody(Vec<FieldError>),
    /// The query string does not fit the endpoint's parameters: every failing one, by name.
    #[error("{}", summary(.0))]
    InvalidQuery(Vec<FieldError>),
    /// A path segment does not fit the endpoint's parameters.
    #[error("{}", summary(.0))]
    InvalidPath(Vec<FieldError>),
    /// The body is not of a media type the endpoint accepts.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than this server accepts")]
    PayloadTooLarge,
    #[error("no resource at this path")]
    NotFound,
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    #[error("no acceptable representation of this resource")]
    NotAcceptable,
    #[error("the request took longer than this server allows")]
    Timeout,
    /// A dependency the request needs is not answering.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 400 with a stable code of its own (an invalid or expired token, a wrong code...).
    #[error("{detail}")]
    BadRequest {
        code: &'static str,
        detail: &'static str,
    },
    /// 401: no credentials, or credentials that do not hold. Answered with
    /// `WWW-Authenticate: Bearer`.
    #[error("{detail}")]
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    /// 403: authenticated (or not needed), but not allowed.
    #[error("{detail}")]
    Forbidden {
        code: &'static str,
        detail: &'static str,
    },
    /// 409: the request conflicts with the current state (a duplicate email...).
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: &'static str,
    },
    /// 429: a rate limit was reached; answered with `Retry-After`.
    #[error("too many requests: try again in {} s", retry_after_seconds(*.retry_after))]
    TooManyRequests { retry_after: std::time::Duration },
    /// A problem document built by the handler, for the few answers with extension members.
    #[error("{}", .0.detail)]
    Problem(Box<Problem>),
    /// A bug or an unexpected failure. The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
    /// A handler panicked; the panic hook has logged it already.
    #[error("a handler panicked")]
    Panicked,
    /// Any other HTTP error produced outside our code (rendered from its status alone).
    #[error("{0}")]
    Status(StatusCode),
}

impl ApiError {
    /// The HTTP status of each kind of error: the one place that decides it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedBody(_) => StatusCode::BAD_REQUEST,
            // One status for every validation failure, body, query or path alike (422, as
            // FastAPI answers): docs/API-CONVENTIONS.md.
            Self::InvalidBody(_) | Self::InvalidQuery(_) | Self::InvalidPath(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) | Self::Panicked => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Timeout | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Problem(problem) => {
                StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::Status(status) => *status,
        }
    }

    /// The stable code that names the kind of problem.
    pub fn code(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::MalformedBody(_) => "malformed-body",
            Self::InvalidBody(_) => "invalid-body",
            Self::InvalidQuery(_) => "invalid-query",
            Self::InvalidPath(_) => "invalid-path",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::PayloadTooLarge => "payload-too-large",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::NotAcceptable => "not-acceptable",
            Self::Timeout => "timeout",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) | Self::Panicked => "internal",
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::TooManyRequests { .. } => "rate-limited",
            Self::Problem(problem) => return Cow::Owned(problem.code.clone()),
            Self::Status(status) => return Cow::Owned(code_for_status(*status)),
        })
    }

    /// The error a bare status from a layer or the router stands for.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::NOT_ACCEPTABLE => Self::NotAcceptable,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::REQUEST_TIMEOUT => Self::Timeout,
            other => Self::Status(other),
        }
    }

    /// A body refused for one field, at the JSON Pointer `pointer`, breaking the rule `code`.
    pub fn invalid_body(pointer: &str, code: &str, detail: &str) -> Self {
        Self::InvalidBody(vec![FieldError::new(pointer, code, detail)])
    }

    /// A query refused for one parameter.
    pub fn invalid_query(name: &str, code: &str, detail: &str) -> Self {
        Self::InvalidQuery(vec![FieldError::new(name, code, detail)])
    }

    /// The field errors this error carries: those of refused content, none otherwise.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Self::InvalidBody(errors) | Self::InvalidQuery(errors) | Self::InvalidPath(errors) => {
                errors.clone()
            }
            Self::MalformedBody(detail) => vec![FieldError::new("", "malformed-json", detail)],
            Self::Problem(problem) => problem.errors.clone(),
            _ => Vec::new(),
        }
    }

    /// Wraps any error as an internal one.
    pub fn internal(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(error.into())
    }

    fn detail(&self) -> String {
        match self {
            // The cause stays in the logs.
            Self::Internal(_) | Self::Panicked => {
                "The server failed to answer this request. It has been logged; quote the request id when reporting it.".to_owned()
            }
            Self::Status(status) => status.canonical_reason().unwrap_or("Error").to_owned(),
            other => capitalise(&other.to_string()),
        }
    }

    /// Renders the problem document for this error.
    pub fn to_problem(&self) -> Problem {
        if let Self::Problem(problem) = self {
            let mut problem = (**problem).clone();
            problem.request_id = current_request_id();
            return problem;
        }
        let status = self.status();
        let code = self.code();
        Problem {
            kind: format!("urn:labs:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: code.into_owned(),
            request_id: current_request_id(),
            errors: self.field_errors(),
            extensions: serde_json::Map::new(),
        }
    }

    /// A problem with extension members, for [`ApiError::Problem`].
    pub fn with_extensions(
        status: StatusCode,
        code: &str,
        detail: &str,
        extensions: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        Self::Problem(Box::new(Problem {
            kind: format!("urn:labs:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.to_owned(),
            code: code.to_owned(),
            request_id: None,
            errors: Vec::new(),
            extensions,
        }))
    }
}

fn retry_after_seconds(wait: std::time::Duration) -> u64 {
    // Rounded up: retrying at the announced second must succeed.
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(cause) = &self {
            // Logged here, where it is handled, inside the request's span (so with its id).
            tracing::error!(error = %cause, "request failed with an internal error");
        }
        let mut response = problem_response(&self.to_problem());
        match &self {
            Self::Unauthorized { .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_seconds(*retry_after)),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<labs_db::DbError> for ApiError {
    /// The database not answering (no free connection within the acquire timeout, a broken
    /// connection, the statement timeout) is a 503: the request may succeed later, elsewhere.
    /// Anything else is a bug, a 500.
    fn from(error: labs_db::DbError) -> Self {
        use labs_db::DbError;
        metrics::counter!("labs_db_errors_total").increment(1);
        // 57014: query_canceled (statement_timeout); 57P01..03: the server is shutting down or
        // not accepting connections; 08xxx: connection exceptions.
        let unavailable_code = error
            .as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|code| {
                code == "57014" || code.starts_with("57P") || code.starts_with("08")
            });
        match error {
            DbError::PoolTimedOut | DbError::PoolClosed | DbError::Io(_) | DbError::Tls(_) => {
                tracing::warn!(%error, "the database is not answering");
                Self::Unavailable("The database is not answering; try again shortly.")
            }
            _ if unavailable_code => {
                tracing::warn!(%error, "the database cancelled or refused the query");
                Self::Unavailable("The database is not answering; try again shortly.")
            }
            other => Self::internal(other),
        }
    }
}

/// Serialises a problem with its media type.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Serialising this struct cannot fail (plain strings and numbers).
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// `Unprocessable Entity` → `unprocessable-entity`.
fn code_for_status(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '\''], "-")
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            let mut out: String = first.to_uppercase().collect();
            out.push_str(chars.as_str());
            if !out.ends_with('.') {
                out.push('.');
            }
            out
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_code_in_its_type() {
        let problem = ApiError::from_status(StatusCode::IM_A_TEAPOT).to_problem();
        assert_eq!(problem.code, "i-m-a-teapot");
        assert_eq!(problem.kind, format!("urn:labs:problem:{}", problem.code));
        assert_eq!(problem.status, 418);
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let problem = ApiError::internal("password=hunter2 in a connection string").to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("hunter2"));
    }
}

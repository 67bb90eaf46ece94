//! What both pages share: the outcome page, the link's token, and errors of the protocol or
//! of the form shown as pages with the status the API would answer.

use askama::Template;
use axum::body::Body;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use labs_http::ApiError;
use serde::Deserialize;

/// The query string of a link.
#[derive(Debug, Deserialize)]
pub(super) struct LinkQuery {
    pub(super) token: Option<String>,
}

/// The end of a flow, or why it cannot go on.
#[derive(Template)]
#[template(path = "pages/outcome.html")]
pub(super) struct Outcome<'a> {
    title: &'a str,
    message: &'a str,
    next: Option<&'a str>,
    failed: bool,
    request_id: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    pub(super) fn done(title: &'a str, message: &'a str) -> Self {
        Self {
            title,
            message,
            next: None,
            failed: false,
            request_id: None,
        }
    }

    pub(super) fn failed(title: &'a str, message: &'a str, next: Option<&'a str>) -> Self {
        Self {
            title,
            message,
            next,
            failed: true,
            request_id: None,
        }
    }
}

pub(super) const ASK_AGAIN: &str = "Ask for a new link from the app, then open the newest email.";

/// A token as links carry it (base64url), else `None`: a link cut short or mangled on its way
/// is told so at once, with no database round trip.
pub(super) fn link_token(token: Option<String>) -> Option<String> {
    token.filter(|token| {
        (1..=256).contains(&token.len())
            && token
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    })
}

pub(super) fn incomplete_link() -> Response {
    html(
        StatusCode::BAD_REQUEST,
        &Outcome::failed(
            "This link is incomplete",
            "The address opened is not a whole link from our email: open the link itself, or \
             paste all of it.",
            Some(ASK_AGAIN),
        ),
    )
}

/// A form body that is no form of these pages: not form-encoded (415), too large (413),
/// unreadable (400, 422).
pub(super) fn unreadable(rejection: &FormRejection) -> Response {
    let status = rejection.status();
    let message = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "This page takes its own HTML form (application/x-www-form-urlencoded), nothing else."
        }
        StatusCode::PAYLOAD_TOO_LARGE => "This form is larger than the server accepts.",
        _ => "This form could not be read.",
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    html(
        status,
        &Outcome::failed(
            "This form cannot be sent",
            message,
            Some("Open the link from the email again and fill in its form."),
        ),
    )
}

/// An error of the protocol, shown as a page with the API's status and headers.
pub(super) struct Refusal {
    /// The API's own answer to the error, whose body the page replaces.
    answer: Response,
    pub(super) code: String,
    pub(super) detail: String,
    request_id: Option<String>,
}

impl Refusal {
    pub(super) fn new(error: ApiError) -> Self {
        let problem = error.to_problem();
        // Rendered as the API would first: an internal error is logged there (once, with the
        // request id), a 429 gets its `Retry-After`.
        let answer = error.into_response();
        Self {
            answer,
            code: problem.code,
            detail: problem.detail,
            request_id: problem.request_id,
        }
    }

    /// Whether showing the form again cannot help: the link is invalid, expired or used up
    /// (a new one is needed), or the server failed.
    pub(super) fn form_cannot_help(&self) -> bool {
        self.code == "invalid-token" || self.answer.status().is_server_error()
    }

    /// The error alone, without the form: what to do next, or (for a server failure) the
    /// request id to quote.
    pub(super) fn show_outcome(self, title: &str) -> Response {
        let server_failed = self.answer.status().is_server_error();
        let (detail, request_id) = (self.detail.clone(), self.request_id.clone());
        let outcome = Outcome {
            request_id: request_id.as_deref().filter(|_| server_failed),
            ..Outcome::failed(title, &detail, (!server_failed).then_some(ASK_AGAIN))
        };
        self.show(&outcome)
    }

    pub(super) fn show(self, page: &impl Template) -> Response {
        let Ok(body) = page.render() else {
            return ApiError::internal("a page template failed to render").into_response();
        };
        let (mut parts, _) = self.answer.into_parts();
        // A Bearer challenge means nothing to a page.
        parts.headers.remove(header::WWW_AUTHENTICATE);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts
            .headers
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(HTML));
        Response::from_parts(parts, Body::from(body))
    }
}

const HTML: &str = "text/html; charset=utf-8";

pub(super) fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, HTML)], body).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_base64url_tokens_are_link_tokens() {
        let token = labs_auth::OpaqueToken::generate();
        assert_eq!(
            link_token(Some(token.as_str().to_owned())).as_deref(),
            Some(token.as_str())
        );
        for bad in ["", "abc def", "abc=", "abc<script>", &"a".repeat(257)] {
            assert_eq!(link_token(Some(bad.to_owned())), None, "{bad:?}");
        }
        assert_eq!(link_token(None), None);
    }
}

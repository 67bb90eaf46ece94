//! The pages the emailed links open, served by the api role under the root path: confirm the
//! address (`/verify-email?token=…`) and choose a new password (`/reset-password?token=…`),
//! the two pages every link the service emails points at. Plain HTML forms rendered by askama
//! (`templates/pages/`), one stylesheet from this router, no script. They work out of the box
//! (the default `LABS_APP_URL` is [`local_app_url`]); a web app of your own replaces them by
//! serving the same two paths and setting `LABS_APP_URL` to its address.
//!
//! They are a second rendering of the same protocol, not a second protocol: a submitted form
//! calls what `POST /auth/verify` and `POST /auth/password-reset/confirm` call
//! ([`crate::auth::signup::verify_email`], [`crate::auth::password::confirm_reset`]), with the
//! same rate limits and attempt caps, and an error they return is shown with its status
//! (4xx for anything the visitor can fix or has to ask again for; never a 500 for bad input).
//!
//! - **No work on GET.** Opening a link shows a form and touches nothing: mail scanners and
//!   link previews fetch links before the person does, and must not spend a single-use token
//!   (nor an attempt of the verification link).
//! - **CSRF**: the forms' POSTs pass the API's own origin check ([`labs_http::csrf::admit`]:
//!   `Sec-Fetch-Site`, then `Origin` against `Host`), applied by this router so that a refusal
//!   is an HTML page rather than the API's problem document. Rejected: a form token (a hidden
//!   value tied to a cookie or kept on the server). The pages hold no session to ride on, so
//!   what a forged cross-site post could do is submit a token its author already has, and the
//!   origin check refuses that in every browser that sends Fetch Metadata, without a cookie or
//!   server state. The price: a browser that sends neither `Sec-Fetch-Site` nor a usable
//!   `Origin` (the `no-referrer` policy below makes a form's `Origin` `null`) is refused; every
//!   current browser sends `Sec-Fetch-Site`.
//! - **The token stays in this page.** `Referrer-Policy: no-referrer` (the shared layer, plus a
//!   `<meta>` for proxies that drop headers) keeps the link's URL out of the stylesheet request
//!   and of anything followed from the page; the forms post to the bare path (the token travels
//!   in the body, not the URL), the access log records paths without their query string
//!   (`labs_http::layers`), and the pages are `Cache-Control: no-store`.
//! - **CSP** [`PAGES_CSP`]: styles from this origin only, forms only to this origin, nothing
//!   else loads, nobody frames the page, no `<base>`.
//!
//! Not in the OpenAPI document: HTML for people, not an API for clients.

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRef, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use labs_domain::Password;
use labs_domain::password::{MAX_CHARS, MIN_CHARS};
use labs_http::ApiError;
use labs_http::csrf::TrustedOrigins;
use serde::Deserialize;

use crate::Accounts;
use crate::auth::limits::ClientIp;

/// The page of the verification link (the path after the app URL).
pub const VERIFY_EMAIL: &str = "verify-email";
/// The page of the reset link, also sent to an address that signs up again.
pub const RESET_PASSWORD: &str = "reset-password";

/// The port of `LABS_BIND`'s default, for the default app URL of a state built outside `serve`.
pub(crate) const DEFAULT_PORT: u16 = 8080;

/// The pages' Content-Security-Policy, in place of the API's `default-src 'none'`: the
/// stylesheet of this origin, forms that post to this origin (`form-action` does not fall back
/// to `default-src`, so it is named), no script at all.
pub const PAGES_CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The default `LABS_APP_URL`: these pages, as a browser on this machine reaches the process
/// that listens on `port`, under the root path (`http://localhost:8080/api`). `localhost`
/// rather than the bound address: `0.0.0.0` is no address to open, and a developer's browser
/// and mail client are on this machine. Behind a proxy on another port, or anywhere else, set
/// `LABS_APP_URL`.
pub fn local_app_url(port: u16, root_path: &str) -> String {
    format!("http://localhost:{port}{root_path}")
}

/// The pages, for any state that offers [`Accounts`] by `FromRef`; `accounts` gives the origins
/// the CSRF check trusts.
pub fn router<S>(accounts: &Accounts) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Accounts: FromRef<S>,
{
    Router::new()
        // The verification link: a password form, then the address confirmed.
        .route(
            &format!("/{VERIFY_EMAIL}"),
            get(show_verify_email).post(submit_verify_email),
        )
        // The reset link: a new-password form, then the password set.
        .route(
            &format!("/{RESET_PASSWORD}"),
            get(show_reset_password).post(submit_reset_password),
        )
        // Their one stylesheet (relative links: `pages.css` beside the page, under any root path).
        .route("/pages.css", get(stylesheet))
        // Inner: refuse cross-origin posts before a body is read.
        .layer(middleware::from_fn_with_state(
            accounts.auth.trusted_origins.clone(),
            same_origin_posts,
        ))
        // Outer: every answer of these paths, the CSRF refusal included, carries the pages' CSP.
        .layer(middleware::map_response(page_headers))
}

/// The query string of a link.
#[derive(Debug, Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// The verification form. Every field optional: a missing one gets its own message, not the
/// form extractor's.
#[derive(Debug, Deserialize)]
struct VerifyForm {
    token: Option<String>,
    password: Option<String>,
}

/// The reset form.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetForm {
    token: Option<String>,
    new_password: Option<String>,
    confirm_password: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/verify_email.html")]
struct VerifyEmailPage<'a> {
    title: &'a str,
    action: &'a str,
    token: &'a str,
    error: Option<&'a str>,
    max_chars: usize,
}

impl<'a> VerifyEmailPage<'a> {
    fn new(token: &'a str, error: Option<&'a str>) -> Self {
        Self {
            title: "Confirm your email address",
            action: VERIFY_EMAIL,
            token,
            error,
            max_chars: MAX_CHARS,
        }
    }
}

#[derive(Template)]
#[template(path = "pages/reset_password.html")]
struct ResetPasswordPage<'a> {
    title: &'a str,
    action: &'a str,
    token: &'a str,
    error: Option<&'a str>,
    min_chars: usize,
    max_chars: usize,
}

impl<'a> ResetPasswordPage<'a> {
    fn new(token: &'a str, error: Option<&'a str>) -> Self {
        Self {
            title: "Choose a new password",
            action: RESET_PASSWORD,
            token,
            error,
            min_chars: MIN_CHARS,
            max_chars: MAX_CHARS,
        }
    }
}

/// The end of a flow, or why it cannot go on.
#[derive(Template)]
#[template(path = "pages/outcome.html")]
struct Outcome<'a> {
    title: &'a str,
    message: &'a str,
    next: Option<&'a str>,
    failed: bool,
    request_id: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    fn done(title: &'a str, message: &'a str) -> Self {
        Self {
            title,
            message,
            next: None,
            failed: false,
            request_id: None,
        }
    }

    fn failed(title: &'a str, message: &'a str, next: Option<&'a str>) -> Self {
        Self {
            title,
            message,
            next,
            failed: true,
            request_id: None,
        }
    }
}

const ASK_AGAIN: &str = "Ask for a new link from the app, then open the newest email.";

/// Confirm your email address: the form.
async fn show_verify_email(query: Result<Query<LinkQuery>, QueryRejection>) -> Response {
    let Some(token) = link_token(query.ok().and_then(|Query(query)| query.token)) else {
        return incomplete_link();
    };
    html(StatusCode::OK, &VerifyEmailPage::new(&token, None))
}

/// Confirm your email address: the password checked, the address verified.
async fn submit_verify_email(
    State(state): State<Accounts>,
    ip: ClientIp,
    form: Result<axum::Form<VerifyForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(form)) => form,
        Err(rejection) => return unreadable(&rejection),
    };
    let Some(token) = link_token(form.token) else {
        return incomplete_link();
    };
    let password = form.password.filter(|password| !password.is_empty());
    match crate::auth::signup::verify_email(&state, ip, &token, password).await {
        Ok(_) => html(
            StatusCode::OK,
            &Outcome::done(
                "Address confirmed",
                "Your email address is confirmed: log in with it and your password.",
            ),
        ),
        Err(error) => {
            let refusal = Refusal::new(error);
            if refusal.form_cannot_help() {
                return refusal.show_outcome("This link cannot confirm the address");
            }
            // Wrong or missing password, too many tries: the link may still hold, so the form
            // again, with what went wrong.
            let message = if refusal.code == "invalid-body" {
                "Type the password you chose when you signed up.".to_owned()
            } else {
                refusal.detail.clone()
            };
            refusal.show(&VerifyEmailPage::new(&token, Some(&message)))
        }
    }
}

/// Choose a new password: the form.
async fn show_reset_password(query: Result<Query<LinkQuery>, QueryRejection>) -> Response {
    let Some(token) = link_token(query.ok().and_then(|Query(query)| query.token)) else {
        return incomplete_link();
    };
    html(StatusCode::OK, &ResetPasswordPage::new(&token, None))
}

/// Choose a new password: the password set, every session ended.
async fn submit_reset_password(
    State(state): State<Accounts>,
    ip: ClientIp,
    form: Result<axum::Form<ResetForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(axum::Form(form)) => form,
        Err(rejection) => return unreadable(&rejection),
    };
    let Some(token) = link_token(form.token) else {
        return incomplete_link();
    };
    let again = |error: &str| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ResetPasswordPage::new(&token, Some(error)),
        )
    };
    let typed = form.new_password.unwrap_or_default();
    if form
        .confirm_password
        .is_some_and(|confirm| confirm != typed)
    {
        return again("The two passwords differ: type the same one twice.");
    }
    let password = match Password::new(typed) {
        Ok(password) => password,
        Err(_) => {
            return again(&format!(
                "Choose a password of {MIN_CHARS} to {MAX_CHARS} characters."
            ));
        }
    };
    match crate::auth::password::confirm_reset(&state, ip, &token, &password).await {
        Ok(()) => html(
            StatusCode::OK,
            &Outcome::done(
                "Password changed",
                "Your new password is set, and every session of the account has ended: log in \
                 with the new password.",
            ),
        ),
        Err(error) => {
            let refusal = Refusal::new(error);
            if refusal.form_cannot_help() {
                return refusal.show_outcome("This link cannot change the password");
            }
            let message = refusal.detail.clone();
            refusal.show(&ResetPasswordPage::new(&token, Some(&message)))
        }
    }
}

/// The stylesheet of the pages.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../templates/pages/pages.css"),
    )
        .into_response()
}

/// A token as links carry it (base64url), else `None`: a link cut short or mangled on its way
/// is told so at once, with no database round trip.
fn link_token(token: Option<String>) -> Option<String> {
    token.filter(|token| {
        (1..=256).contains(&token.len())
            && token
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
    })
}

fn incomplete_link() -> Response {
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
fn unreadable(rejection: &FormRejection) -> Response {
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
struct Refusal {
    /// The API's own answer to the error, whose body the page replaces.
    answer: Response,
    code: String,
    detail: String,
    request_id: Option<String>,
}

impl Refusal {
    fn new(error: ApiError) -> Self {
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
    fn form_cannot_help(&self) -> bool {
        self.code == "invalid-token" || self.answer.status().is_server_error()
    }

    /// The error alone, without the form: what to do next, or (for a server failure) the
    /// request id to quote.
    fn show_outcome(self, title: &str) -> Response {
        let server_failed = self.answer.status().is_server_error();
        let (detail, request_id) = (self.detail.clone(), self.request_id.clone());
        let outcome = Outcome {
            request_id: request_id.as_deref().filter(|_| server_failed),
            ..Outcome::failed(title, &detail, (!server_failed).then_some(ASK_AGAIN))
        };
        self.show(&outcome)
    }

    fn show(self, page: &impl Template) -> Response {
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

fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, HTML)], body).into_response(),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

/// Refuses a cross-origin POST with the API's own rule; an HTML page says so.
async fn same_origin_posts(
    State(trusted): State<TrustedOrigins>,
    request: Request,
    next: Next,
) -> Response {
    if labs_http::csrf::admit(&request, &trusted) {
        return next.run(request).await;
    }
    html(
        StatusCode::FORBIDDEN,
        &Outcome::failed(
            "Refused",
            "This form was sent from another site, which may not send it here.",
            Some("Open the link from the email yourself, and fill in the form it shows."),
        ),
    )
}

/// The pages' CSP (replacing the API's, which the shared layer then leaves alone), and
/// `no-store`: a page holds its link's token.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGES_CSP),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
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

    #[test]
    fn the_default_app_url_is_these_pages_under_the_root_path() {
        assert_eq!(local_app_url(8080, "/api"), "http://localhost:8080/api");
        assert_eq!(local_app_url(3000, ""), "http://localhost:3000");
    }
}
